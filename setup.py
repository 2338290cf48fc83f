"""Installs the emoji_privacy library for catkin (catkin_python_setup)."""
from setuptools import setup

from catkin_pkg.python_setup import generate_distutils_setup

PACKAGES = ["emoji_privacy"] + [f"emoji_privacy.{sub}" for sub in (
    "emotion", "evaluation", "federated", "landmarks", "ros", "training", "web")]

setup(**generate_distutils_setup(packages=PACKAGES, package_dir={"": "src"},
                               package_data={"emoji_privacy.web": ["static/*"]}))
