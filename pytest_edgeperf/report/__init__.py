"""Everything a person or a tool reads after a run: terminal table, JSON, pytest-benchmark JSON, HTML, markdown."""
