-- The one place outbox rows are written: every state change that causes messages calls this in
-- its own transaction, and the relay publishes the rows once they are committed.
CREATE OR REPLACE FUNCTION interlock_outbox_add(messages jsonb, at_ timestamptz) RETURNS void
LANGUAGE sql AS $fn$
    INSERT INTO outbox_message (exchange, routing_key, message_id, content_type, headers, body,
                                created_at)
    SELECT o->>'exchange', o->>'routing_key', o->>'message_id', o->>'content_type',
           CASE WHEN jsonb_typeof(o->'headers') = 'object' THEN o->'headers' END,
           convert_to(o->>'body', 'UTF8'), at_
    FROM jsonb_array_elements(coalesce(messages, '[]'::jsonb)) AS o;
$fn$;
