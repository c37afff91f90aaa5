package cli

import (
	"regexp"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// rpcPrefix is what gRPC puts before a status message each time an error
// crosses a connection; BuildKit's errors cross two (buildkitd's
// controller, then the client), so it comes twice.
var rpcPrefix = regexp.MustCompile(`rpc error: code = \w+ desc = `)

// describeError writes err for a person: a BuildKit gRPC error once, with
// its code, and a hint where the cause is a common one ("" otherwise).
func describeError(err error) (msg, hint string) {
	code := status.Code(err)
	msg = err.Error()
	msg = rpcPrefix.ReplaceAllString(msg, "")
	if code != codes.Unknown {
		msg += " (" + code.String() + ")"
	}
	return msg, errorHint(code, msg)
}

func errorHint(code codes.Code, msg string) string {
	lower := strings.ToLower(msg)
	switch {
	case code == codes.Unavailable:
		return "the builder does not answer: start one (buildkitd, or `docker buildx create --use`) and pass its address with --builder or BUILDKIT_HOST"
	case code == codes.PermissionDenied || strings.Contains(lower, "permission denied"):
		return "access was refused: check that this user may use the builder's socket, and the registry login (docker login) for the images and cache"
	case strings.Contains(lower, "failed to resolve source metadata") || strings.Contains(lower, "pull access denied"):
		return "an image named in the Dockerfile (FROM, COPY --from) was not found or may not be pulled: check its name and the registry login"
	}
	return ""
}
