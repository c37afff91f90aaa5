package scope

import (
	"os"
	"path/filepath"
	"testing"
)

// fixture is one realistic run: the runner variables plus the webhook
// payload GitHub writes to GITHUB_EVENT_PATH (testdata/<file>).
type fixture struct {
	name string
	env  map[string]string
	file string
}

const repo = "Codertocat/Hello-World"

var fixtures = []fixture{
	{"push branch", map[string]string{"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/feature/Login_Form", "GITHUB_REPOSITORY": repo}, "push_branch.json"},
	{"push default branch trunk", map[string]string{"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/trunk", "GITHUB_REPOSITORY": "octo-org/octo-repo"}, "push_default_trunk.json"},
	{"push tag", map[string]string{"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/tags/v1.2.3", "GITHUB_REPOSITORY": repo}, "push_tag.json"},
	{"push deleted branch", map[string]string{"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/feature/old", "GITHUB_REPOSITORY": repo}, "push_deleted_branch.json"},
	{"pull_request same repo", map[string]string{"GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "refs/pull/17/merge", "GITHUB_HEAD_REF": "feature/login", "GITHUB_BASE_REF": "develop", "GITHUB_REPOSITORY": repo}, "pull_request_same_repo.json"},
	{"pull_request fork", map[string]string{"GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "refs/pull/42/merge", "GITHUB_HEAD_REF": "main", "GITHUB_BASE_REF": "master", "GITHUB_REPOSITORY": repo}, "pull_request_fork.json"},
	{"pull_request_target fork", map[string]string{"GITHUB_EVENT_NAME": "pull_request_target", "GITHUB_REF": "refs/heads/master", "GITHUB_HEAD_REF": "main", "GITHUB_BASE_REF": "master", "GITHUB_REPOSITORY": repo}, "pull_request_target_fork.json"},
	{"pull_request_target same repo", map[string]string{"GITHUB_EVENT_NAME": "pull_request_target", "GITHUB_REF": "refs/heads/develop", "GITHUB_HEAD_REF": "feature/login", "GITHUB_BASE_REF": "develop", "GITHUB_REPOSITORY": repo}, "pull_request_target_same_repo.json"},
	{"merge_group", map[string]string{"GITHUB_EVENT_NAME": "merge_group", "GITHUB_REF": "refs/heads/gh-readonly-queue/trunk/pr-104-929f8209d40f77f4abc622a499c93a83babdbe64", "GITHUB_REPOSITORY": "octo-org/octo-repo"}, "merge_group.json"},
	{"workflow_dispatch", map[string]string{"GITHUB_EVENT_NAME": "workflow_dispatch", "GITHUB_REF": "refs/heads/release/2.x", "GITHUB_REPOSITORY": "octo-org/octo-repo"}, "workflow_dispatch.json"},
	{"schedule", map[string]string{"GITHUB_EVENT_NAME": "schedule", "GITHUB_REF": "refs/heads/develop", "GITHUB_REPOSITORY": "octo-org/octo-repo"}, "schedule.json"},
	{"repository_dispatch", map[string]string{"GITHUB_EVENT_NAME": "repository_dispatch", "GITHUB_REF": "refs/heads/develop", "GITHUB_REPOSITORY": "octo-org/octo-repo"}, "repository_dispatch.json"},
	{"release", map[string]string{"GITHUB_EVENT_NAME": "release", "GITHUB_REF": "refs/tags/v2.0.0", "GITHUB_REPOSITORY": repo}, "release.json"},
	{"workflow_run after push", map[string]string{"GITHUB_EVENT_NAME": "workflow_run", "GITHUB_REF": "refs/heads/develop", "GITHUB_REPOSITORY": "octo-org/octo-repo"}, "workflow_run_push.json"},
	{"workflow_run after same-repo PR", map[string]string{"GITHUB_EVENT_NAME": "workflow_run", "GITHUB_REF": "refs/heads/develop", "GITHUB_REPOSITORY": "octo-org/octo-repo"}, "workflow_run_pull_request.json"},
	{"workflow_run after fork PR", map[string]string{"GITHUB_EVENT_NAME": "workflow_run", "GITHUB_REF": "refs/heads/develop", "GITHUB_REPOSITORY": "octo-org/octo-repo"}, "workflow_run_fork.json"},
	{"issue_comment on PR", map[string]string{"GITHUB_EVENT_NAME": "issue_comment", "GITHUB_REF": "refs/heads/master", "GITHUB_REPOSITORY": repo}, "issue_comment_pr.json"},
	{"delete branch", map[string]string{"GITHUB_EVENT_NAME": "delete", "GITHUB_REF": "refs/heads/master", "GITHUB_REPOSITORY": repo}, "delete.json"},
}

func (f fixture) event(t testing.TB) Event {
	t.Helper()
	env := map[string]string{"GITHUB_EVENT_PATH": filepath.Join("testdata", f.file)}
	for k, v := range f.env {
		env[k] = v
	}
	ev, err := EventFromEnv(func(k string) string { return env[k] }, os.ReadFile)
	if err != nil {
		t.Fatalf("%s: EventFromEnv: %v", f.name, err)
	}
	return ev
}

func fixtureByName(t testing.TB, name string) fixture {
	t.Helper()
	for _, f := range fixtures {
		if f.name == name {
			return f
		}
	}
	t.Fatalf("no fixture %q", name)
	return fixture{}
}
