-- kms-pam control plane: the X25519 public key each gateway registered for KMS to seal its
-- credentials to (HPKE, docs/api.md). KMS hands a service-account token to a gateway only sealed
-- to this key; a gateway without one (enrolled before this table) registers it at its next start.
CREATE TABLE gateway_sealing_keys (
    gateway_id TEXT PRIMARY KEY REFERENCES gateways (id) ON DELETE CASCADE,
    public_key TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
