"""`python -m chatcluster` is `chatctl` (the supervisor starts its children this way)."""

from chatcluster.cli import main

if __name__ == "__main__":
    main()
