# syntax=docker/dockerfile:1.7-labs
FROM node:20-slim AS base
ENV PNPM_HOME="/pnpm"
ENV PATH="$PNPM_HOME:$PATH"
RUN corepack enable
WORKDIR /app

FROM base AS deps
COPY package.json pnpm-lock.yaml ./
RUN --mount=type=cache,id=pnpm,target=/pnpm/store,sharing=locked pnpm install --frozen-lockfile

FROM base AS npm
COPY tools/package*.json ./tools/
RUN --mount=type=cache,target=/root/.npm npm ci --prefix tools

FROM base
ARG NODE_UID=1000
COPY --from=deps /app/node_modules ./node_modules
COPY --from=npm /app/tools ./tools
COPY . .
RUN --mount=type=cache,id=pnpm,target=${PNPM_HOME}/store,sharing=locked pnpm install --offline
RUN --mount=type=cache,target=/app/.next/cache,uid=${NODE_UID},gid=1000 pnpm build
