"""The admin index names every model as people say it."""


def test_admin_index_labels(client, admin_user):
    client.force_login(admin_user)
    page = client.get("/admin/").content.decode()
    for label in ("SLA clocks", "Maintenance switch", "Alert deliveries", "Webhook deliveries"):
        assert label in page
    for wrong in ("Sla clocks", "switchs", "deliverys"):
        assert wrong not in page
