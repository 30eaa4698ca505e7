"""`python -m transition`: the command line."""

from transition.cli._main import main

if __name__ == "__main__":
    raise SystemExit(main())
