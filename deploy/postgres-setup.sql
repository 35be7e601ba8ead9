-- The role and database the centre's coordinator replicas share. Run once as
-- a PostgreSQL superuser:  sudo -u postgres psql -f deploy/postgres-setup.sql
-- The replicas create their tables themselves (numbered migrations, applied in
-- one transaction by the first replica that starts); the role owns them.
CREATE ROLE c2wall LOGIN;
CREATE DATABASE c2wall OWNER c2wall;
-- Set a password (\password c2wall) or allow the replicas' hosts with
-- certificate or peer authentication in pg_hba.conf, e.g.:
--   hostssl c2wall c2wall 192.0.2.0/24 scram-sha-256
