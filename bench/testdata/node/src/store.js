'use strict';

// An in-memory item store; the one-file PR of the benchmark edits this file.
function createStore() {
  const items = new Map();
  let next = 1;
  return {
    list: () => [...items.values()],
    get: (id) => items.get(id),
    add: (item) => {
      const stored = { id: next++, ...item };
      items.set(stored.id, stored);
      return stored;
    },
  };
}

module.exports = { createStore };
