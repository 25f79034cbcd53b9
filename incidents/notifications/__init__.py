"""Notifications: the registries of events and formats (registry.py), one module per format
(formats/). Delivery to endpoints and contacts is incidents.alerting.notify."""
