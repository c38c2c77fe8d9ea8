-- What the authorization request asked of the login and consent pages:
-- `login_hint` prefills the username field, and `prompt_consent` (the
-- request had prompt=consent) shows the consent page with every requested
-- scope, even when the user approved all of them before.
ALTER TABLE login_transactions ADD COLUMN login_hint TEXT;
ALTER TABLE login_transactions ADD COLUMN prompt_consent BOOLEAN NOT NULL DEFAULT FALSE;
