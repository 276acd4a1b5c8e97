"""Scripts for the people who work on localpipe (tools/README.md); not part of the package."""
