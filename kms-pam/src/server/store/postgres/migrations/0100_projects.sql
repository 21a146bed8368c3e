-- kms-pam control plane: PAM projects and per-project roles (issue 11).
-- Every PAM row of versions 1-2 already carries the project_id of `default` (the only project
-- then), so existing resources, accounts, grants and sessions are in `default` as they are.

-- A deleted project keeps its sessions' history; its row is renamed (`NAME~ID`, which no name
-- can be) so the name is free again.
ALTER TABLE projects ADD COLUMN deleted_at BIGINT;

CREATE TABLE project_members (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL,         -- admin | member | auditor
    created_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user ON project_members (user_id);

-- Users who are not organisation administrators could use `default` before roles existed:
-- they stay there as members.
INSERT INTO project_members (project_id, user_id, role, created_at)
SELECT p.id, u.id, 'member', u.created_at
  FROM projects p, users u
 WHERE p.name = 'default' AND NOT u.admin;
