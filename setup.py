from setuptools import setup

# Everything lives in setup.cfg; this file exists for tools that still call
# setup.py, and so that twisted/plugins/ (a folder without __init__.py) ships.
setup()
