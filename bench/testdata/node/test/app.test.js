'use strict';

const request = require('supertest');
const { createApp } = require('../src/app');

describe('items API', () => {
  const app = createApp();

  test('health', async () => {
    const res = await request(app).get('/healthz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true });
  });

  test('add and read an item', async () => {
    const created = await request(app).post('/items').send({ name: 'bolt', quantity: 3 });
    expect(created.status).toBe(201);
    const got = await request(app).get(`/items/${created.body.id}`);
    expect(got.body).toEqual({ id: created.body.id, name: 'bolt', quantity: 3 });
  });

  test('rejects a bad item', async () => {
    const res = await request(app).post('/items').send({ name: '', quantity: -1 });
    expect(res.status).toBe(400);
  });
});
