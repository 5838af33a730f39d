-- Budget checks and per-user queries read one user's or session's rows: index them per project.
CREATE INDEX observations_project_user ON observations (project_id, user_id, start_time);
CREATE INDEX observations_project_session ON observations (project_id, session_id, start_time);
CREATE INDEX traces_project_user ON traces (project_id, user_id);
CREATE INDEX traces_project_session ON traces (project_id, session_id);
