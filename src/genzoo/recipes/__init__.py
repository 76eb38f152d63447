"""Recipe files (YAML). `genzoo list` shows them; `genzoo train NAME` runs one."""
