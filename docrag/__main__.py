"""``python -m docrag``: the command line (same as ``docrag``)."""

from docrag.cli import main

if __name__ == "__main__":
    main()
