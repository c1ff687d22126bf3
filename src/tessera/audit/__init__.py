"""The audit trail: versioned records, a hash chain with signed checkpoints, a group-commit writer."""
