-- kms-pam control plane: which projects may use a gateway, and which API server URLs its
-- resources may have (docs/security.md, "Attacks closed in the third round", issue 28 point 6).
-- A resource may be created in a project only on a gateway assigned to that project. So that
-- nothing that works today stops, every gateway is assigned to every project that already has a
-- resource on it, and to `default` (where gateways created without a project go).
CREATE TABLE gateway_projects (
    gateway_id TEXT NOT NULL REFERENCES gateways (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (gateway_id, project_id)
);
CREATE INDEX gateway_projects_project ON gateway_projects (project_id);

INSERT INTO gateway_projects (gateway_id, project_id, created_at)
SELECT DISTINCT r.gateway_id, r.project_id, g.created_at
  FROM resources r JOIN gateways g ON g.id = r.gateway_id;

INSERT INTO gateway_projects (gateway_id, project_id, created_at)
SELECT g.id, p.id, g.created_at
  FROM gateways g, projects p
 WHERE p.name = 'default'
   AND NOT EXISTS (SELECT 1 FROM gateway_projects x WHERE x.gateway_id = g.id AND x.project_id = p.id);

-- The allow-list of resource URL hosts, one pattern a line; empty: no limit (as before).
ALTER TABLE gateways ADD COLUMN allowed_url_hosts TEXT NOT NULL DEFAULT '';
