"""Router and Telit FN990A emulator, and the tests of device-scripts/.

Import with ``tests/`` on ``sys.path``: ``from device.router import
EmulatedRouter``. Standard library only; no Django.
"""
