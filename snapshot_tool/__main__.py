"""``python -m snapshot_tool`` runs the same app as the ``snapshot-tool`` script."""

from snapshot_tool.cli import main

if __name__ == "__main__":
    main()
