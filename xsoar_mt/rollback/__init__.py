"""Going back after an upgrade: what each server's backup is (`backups`), and the ordered way back (`planner`)."""
