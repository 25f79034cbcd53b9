"""The page a one-click acknowledge link opens: a confirmation on GET, the acknowledgement on POST.

No sign-in is needed (the signed link is the credential, bound to one person, one incident and
one action); a person signed in as someone else is refused. Mail scanners fetch links with GET,
which never acts.
"""

from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from incidents.alerting import paging
from incidents.alerting.notify import incident_url
from opsportal.errors import REFUSALS, to_http


@require_http_methods(["GET", "POST"])
def page_link(request, token: str):
    try:
        if request.method == "POST":
            page, acted = paging.acknowledge_by_link(token, signed_in=request.user)
        else:
            page, acted = paging.page_for_link(token, signed_in=request.user), None
    except REFUSALS as exc:
        status, body = to_http(exc)
        return render(request, "incidents/paging/link.html", {"error": body["detail"]}, status=status)
    incident = page.incident
    if request.method == "GET" and page.link_used_at is not None:
        status = 409
        error = "This link was already used."
        return render(request, "incidents/paging/link.html", {"error": error, "incident": incident}, status=status)
    return render(
        request,
        "incidents/paging/link.html",
        {"page": page, "incident": incident, "incident_url": incident_url(incident), "acted": acted},
    )
