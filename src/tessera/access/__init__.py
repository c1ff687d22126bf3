"""Task-bound authority: tasks now; just-in-time grants and approvals later."""
