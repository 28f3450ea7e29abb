-- cfhost's tables. Applied at every connect, idempotently, under an advisory lock so that
-- nodes starting together do not race.
CREATE TABLE IF NOT EXISTS cfhost_schema (version integer PRIMARY KEY);
INSERT INTO cfhost_schema (version) VALUES (1) ON CONFLICT DO NOTHING;

-- An account; `document` is its account.json (realm, name, timezone), NULL when it has none.
CREATE TABLE IF NOT EXISTS cfhost_accounts (
    id text PRIMARY KEY,
    document jsonb,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- An account's documents in KAZOO's JSON shape: `kind` is callflows, users, devices or vmboxes.
CREATE TABLE IF NOT EXISTS cfhost_documents (
    account_id text NOT NULL REFERENCES cfhost_accounts (id) ON DELETE CASCADE,
    kind text NOT NULL,
    id text NOT NULL,
    document jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, kind, id)
);

-- An account's own modules: a component's bytes.
CREATE TABLE IF NOT EXISTS cfhost_modules (
    account_id text NOT NULL REFERENCES cfhost_accounts (id) ON DELETE CASCADE,
    name text NOT NULL,
    wasm bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, name)
);

-- Every change to an account (through any node, or by an operator's own tooling) is
-- announced on `cfhost_changes` with the account's id; a TRUNCATE announces `*`: everything.
CREATE OR REPLACE FUNCTION cfhost_account_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('cfhost_changes', OLD.id);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM pg_notify('cfhost_changes', NEW.id);
    END IF;
    RETURN NULL;
END $$;

-- The same for the rows of an account (documents, modules).
CREATE OR REPLACE FUNCTION cfhost_account_row_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('cfhost_changes', OLD.account_id);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM pg_notify('cfhost_changes', NEW.account_id);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION cfhost_everything_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cfhost_changes', '*');
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER cfhost_accounts_changed
    AFTER INSERT OR UPDATE OR DELETE ON cfhost_accounts
    FOR EACH ROW EXECUTE FUNCTION cfhost_account_changed();
CREATE OR REPLACE TRIGGER cfhost_documents_changed
    AFTER INSERT OR UPDATE OR DELETE ON cfhost_documents
    FOR EACH ROW EXECUTE FUNCTION cfhost_account_row_changed();
CREATE OR REPLACE TRIGGER cfhost_modules_changed
    AFTER INSERT OR UPDATE OR DELETE ON cfhost_modules
    FOR EACH ROW EXECUTE FUNCTION cfhost_account_row_changed();
CREATE OR REPLACE TRIGGER cfhost_accounts_truncated
    AFTER TRUNCATE ON cfhost_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION cfhost_everything_changed();
CREATE OR REPLACE TRIGGER cfhost_documents_truncated
    AFTER TRUNCATE ON cfhost_documents
    FOR EACH STATEMENT EXECUTE FUNCTION cfhost_everything_changed();
CREATE OR REPLACE TRIGGER cfhost_modules_truncated
    AFTER TRUNCATE ON cfhost_modules
    FOR EACH STATEMENT EXECUTE FUNCTION cfhost_everything_changed();

-- Voicemail messages: the recording (a WAV file) and its metadata (KAZOO's message fields).
-- Not configuration: no announcement.
CREATE TABLE IF NOT EXISTS cfhost_voicemail (
    account_id text NOT NULL REFERENCES cfhost_accounts (id) ON DELETE CASCADE,
    box_id text NOT NULL,
    message_id text NOT NULL,
    metadata jsonb NOT NULL,
    audio bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, box_id, message_id)
);

-- An account's email templates: KAZOO's notification document and its two bodies. Read by
-- the mailer for each notification: no announcement.
CREATE TABLE IF NOT EXISTS cfhost_templates (
    account_id text NOT NULL REFERENCES cfhost_accounts (id) ON DELETE CASCADE,
    id text NOT NULL,
    document jsonb,
    text_body text,
    html_body text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, id)
);

-- The mailers' claims: a notification's identity, held by one delivery being handled
-- (`owner`) until it is sent (kept) or released (deleted). See claims.rs.
CREATE TABLE IF NOT EXISTS cfhost_mailer_sent (
    identity text PRIMARY KEY,
    owner text NOT NULL,
    sent boolean NOT NULL DEFAULT false,
    claimed_at timestamptz NOT NULL DEFAULT now()
);

-- The devices' SIP credentials, for an edge in front of the nodes (Kamailio's auth_db reads
-- it: deploy/kamailio): user name, realm (its account's) and password, live from the device
-- documents, so a password changed through cfhost counts at once.
CREATE OR REPLACE VIEW cfhost_sip_credentials AS
SELECT d.document -> 'sip' ->> 'username' AS username,
       a.document ->> 'realm' AS domain,
       d.document -> 'sip' ->> 'password' AS password,
       d.account_id,
       d.id AS device_id
FROM cfhost_documents d
JOIN cfhost_accounts a ON a.id = d.account_id
WHERE d.kind = 'devices'
  AND d.document -> 'sip' ->> 'username' IS NOT NULL
  AND a.document ->> 'realm' IS NOT NULL;
