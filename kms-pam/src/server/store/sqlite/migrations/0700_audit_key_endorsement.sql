-- kms-pam control plane: KMS endorses each gateway's audit key with its own audit key (the
-- file beside the root key), so that a key swapped in this table by whoever can write it is
-- refused (docs/session-tracking.md, "Threat model"). Keys present when this migration runs are
-- endorsed by the first KMS start after it (one marked by the `audit-keys-endorsed` file in its
-- data dir): a key swapped before the upgrade cannot be told apart.
ALTER TABLE gateway_audit_keys ADD COLUMN endorsement TEXT;
