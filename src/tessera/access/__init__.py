"""Task-bound authority and just-in-time access.

Tasks, access requests, human approvals (CIBA-style), grants and break-glass.
"""
