"""``python -m calib.cli``: the ``calib`` command."""

from . import main

if __name__ == "__main__":  # pragma: no cover
    main()
