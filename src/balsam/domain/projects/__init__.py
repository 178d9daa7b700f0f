"""Projects: repository + bucket + members, and their branches and files."""
