"""Portal pages of the ops app, one module per page family."""
