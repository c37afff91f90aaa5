'use strict';

const express = require('express');
const compression = require('compression');
const cors = require('cors');
const helmet = require('helmet');
const pinoHttp = require('pino-http');
const { z } = require('zod');
const { createStore } = require('./store');

const itemSchema = z.object({
  name: z.string().min(1).max(100),
  quantity: z.number().int().nonnegative(),
});

function createApp({ logger } = {}) {
  const app = express();
  const store = createStore();
  app.use(helmet());
  app.use(cors());
  app.use(compression());
  app.use(express.json());
  if (logger) {
    app.use(pinoHttp({ logger }));
  }

  app.get('/healthz', (req, res) => res.json({ ok: true }));

  app.get('/items', (req, res) => res.json(store.list()));

  app.post('/items', (req, res) => {
    const parsed = itemSchema.safeParse(req.body);
    if (!parsed.success) {
      return res.status(400).json({ error: parsed.error.issues });
    }
    return res.status(201).json(store.add(parsed.data));
  });

  app.get('/items/:id', (req, res) => {
    const item = store.get(Number(req.params.id));
    if (!item) {
      return res.status(404).json({ error: 'not found' });
    }
    return res.json(item);
  });

  return app;
}

module.exports = { createApp };
