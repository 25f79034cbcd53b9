"""The ops API: actions, approvals, maintenance and retention over REST, for admins."""
