"""Alert intake, response clocks and notifications: the parts of incidents that run without a person."""
