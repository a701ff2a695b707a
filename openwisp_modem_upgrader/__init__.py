VERSION = (0, 1, 0, "alpha")
__version__ = VERSION


def get_version():
    version = f"{VERSION[0]}.{VERSION[1]}.{VERSION[2]}"
    if VERSION[3] != "final":
        version = f"{version}{VERSION[3][0]}"
    return version
