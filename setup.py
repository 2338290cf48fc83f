"""Installs the emoji_privacy library for catkin (catkin_python_setup)."""
from setuptools import setup

from catkin_pkg.python_setup import generate_distutils_setup

setup(**generate_distutils_setup(packages=["emoji_privacy", "emoji_privacy.web", "emoji_privacy.federated"], package_dir={"": "src"},
                               package_data={"emoji_privacy.web": ["static/*"]}))
