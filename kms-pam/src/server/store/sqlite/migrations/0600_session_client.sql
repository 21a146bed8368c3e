-- kms-pam web console (issue 12): the session page shows where a session was requested from —
-- the network address KMS saw the `POST /v1/sessions` come from and the requesting client's
-- `User-Agent` (the CLI names itself and its version). Sessions opened before this migration
-- have neither.
ALTER TABLE sessions ADD COLUMN client_address TEXT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
