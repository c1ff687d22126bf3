"""Just-in-time access: requests, human approvals (CIBA-style), grants and break-glass."""
