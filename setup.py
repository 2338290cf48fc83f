"""Installs the emoji_privacy library for catkin (catkin_python_setup)."""
from catkin_pkg.python_setup import generate_distutils_setup
from setuptools import find_packages, setup

# Every package under src/ (the library and its subpackages): a new subpackage cannot be left out of
# the install space.
setup(**generate_distutils_setup(packages=find_packages("src"), package_dir={"": "src"},
                               package_data={"emoji_privacy.web": ["static/*"]}))
