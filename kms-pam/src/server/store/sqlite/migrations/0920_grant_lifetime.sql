-- Grants with a lifetime (issue 23): a grant may expire (`expires_at`, NULL: never) and may be
-- revoked (`revoked_at`, by whom and why), after which it stays listed as revoked. Sessions
-- opened under a grant end when it expires or is revoked; none open under it after.
ALTER TABLE grants ADD COLUMN expires_at INTEGER;
ALTER TABLE grants ADD COLUMN revoked_at INTEGER;
ALTER TABLE grants ADD COLUMN revoked_by TEXT;
ALTER TABLE grants ADD COLUMN revoke_reason TEXT;
