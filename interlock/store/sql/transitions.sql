-- Every status change of an execution, a step, a for_each item or an approval must be one the
-- transition tables allow (schemas/status.py, copied into status_transition by migrations).
-- TG_ARGV[0] names the machine; a new record changes from '' (nothing).
CREATE OR REPLACE FUNCTION interlock_check_transition() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    old_status text := CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.status::text END;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = NEW.status THEN
        RETURN NEW;
    END IF;
    PERFORM 1 FROM status_transition
    WHERE machine = TG_ARGV[0] AND from_status = coalesce(old_status, '')
      AND to_status = NEW.status::text;
    IF NOT FOUND THEN
        RAISE EXCEPTION '% cannot go from % to %', TG_ARGV[0], coalesce(old_status, 'nothing'),
            NEW.status USING ERRCODE = 'IL002';
    END IF;
    RETURN NEW;
END
$fn$;
