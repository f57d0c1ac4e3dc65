-- No row of an execution, a step, a for_each item or an approval may change its status in a
-- way no sequence of allowed transitions could (schemas/status.py, copied into
-- status_transition by migrations: the tables' rows and their closure), whoever writes it. The
-- write path checks each single transition itself; one row update may make several of them
-- (a step started and completed in one boundary). TG_ARGV[0] names the machine; a new record
-- changes from '' (nothing).
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
