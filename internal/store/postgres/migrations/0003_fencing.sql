-- Every claim gets a fencing token, and a saga can tell a step that failed
-- for sure from one whose last attempt may have reached the target.
--
-- lease_token is raised by every claim; a complete or postpone must name
-- the token of the claim it ends. outcome_unknown marks a last attempt
-- whose request was written but whose answer never came.
-- compensate_unknown is the step's compensate_unknown (default true).

ALTER TABLE deliveries ADD COLUMN lease_token bigint NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN outcome_unknown boolean NOT NULL DEFAULT false;
ALTER TABLE deliveries ADD COLUMN compensate_unknown boolean NOT NULL DEFAULT true;
