-- kms-pam control plane: how CLIs reach each gateway, as its last heartbeat said (issue 20,
-- outbound-only gateways): JSON `{"direct": bool, "relays": [{"url": "host:port", "connected":
-- bool}]}`. NULL (a gateway that never sent one: older gateways, and every gateway from its
-- enrollment to its first heartbeat): directly at its address, through no relay.
ALTER TABLE gateways ADD COLUMN reach TEXT;
