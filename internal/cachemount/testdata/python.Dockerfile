ARG PYTHON_VERSION=3.12
FROM python:${PYTHON_VERSION}-slim AS builder
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=bind,source=requirements.txt,target=requirements.txt \
    pip wheel --wheel-dir /wheels -r requirements.txt

FROM python:${PYTHON_VERSION}-slim AS runtime
ARG UID=10001
ARG GID=${UID}
RUN groupadd -g "${GID}" app && useradd -u "${UID}" -g "${GID}" -m app
USER app
COPY --from=builder /wheels /wheels
RUN --mount=type=cache,id=pip-app,target=/home/app/.cache/pip,uid=${UID},gid=${GID} \
    --mount=type=cache,target=/home/app/.cache/uv,uid=$UV_UID \
    pip install --user /wheels/*
