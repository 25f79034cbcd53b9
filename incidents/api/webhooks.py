"""Administrative endpoints: POST /api/ops/webhooks/redeliver {"deliveryId": ...} (admin only)."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents.models import WebhookDelivery
from opsportal.roles import IsAdmin


class RedeliverSerializer(serializers.Serializer):
    deliveryId = serializers.IntegerField(min_value=1)


class WebhookDeliverySerializer(serializers.ModelSerializer):
    endpoint = serializers.CharField(source="endpoint.name")

    class Meta:
        model = WebhookDelivery
        fields = [
            "id", "endpoint", "event", "incident", "state", "attempts", "last_status_code", "last_error",
            "last_attempt_at", "next_retry_at", "retry_until", "delivered_at", "redelivered_at", "created_at",
        ]  # fmt: skip


class RedeliverView(APIView):
    """Send a webhook delivery again now (SessionAuthentication enforces CSRF for the portal)."""

    permission_classes = [IsAdmin]

    @extend_schema(request=RedeliverSerializer, responses={202: WebhookDeliverySerializer})
    def post(self, request):
        payload = RedeliverSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        delivery = get_object_or_404(WebhookDelivery, pk=payload.validated_data["deliveryId"])
        delivery.redeliver(by=request.user)
        delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery.pk)
        return Response(WebhookDeliverySerializer(delivery).data, status=202)
