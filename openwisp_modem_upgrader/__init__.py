VERSION = (0, 1, 0, "alpha")
__version__ = VERSION


def get_version():
    version = f"{VERSION[0]}.{VERSION[1]}.{VERSION[2]}"
    if VERSION[3] != "final":
        # PEP 440's own spelling ("0.1.0a0"): setuptools warns at every
        # build when it has to normalize "0.1.0a"
        version = f"{version}{VERSION[3][0]}0"
    return version
