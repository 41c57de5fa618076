"""Patient channels over HTTP gateways: SMS (Alibaba Cloud, or the hospital's own webhook), WeChat
Official Account template messages, app push through a webhook. Each implements activities.channels.Channel
and returns the gateway's message id, which the gateway's delivery receipt names (api/routes/receipts.py)."""
