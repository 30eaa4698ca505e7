"""`python -m transition`: the command line."""

from transition._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
