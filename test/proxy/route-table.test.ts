import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cleanPath, RouteTable } from '../../proxy/route-table.js';

describe('route table', () => {
  test('cleanPath gives one leading slash and no trailing one: the one name of what the trie matches', () => {
    assert.equal(cleanPath(''), '/');
    assert.equal(cleanPath('/'), '/');
    assert.equal(cleanPath('//'), '/');
    assert.equal(cleanPath('user/a/'), '/user/a');
    assert.equal(cleanPath('/user/a'), '/user/a');
    assert.equal(cleanPath('//user/a//'), '/user/a');
    assert.equal(cleanPath('/user//a'), '/user//a', 'an empty segment inside is a segment');
    const table = new RouteTable<string>();
    table.set(cleanPath('//dbl'), 'x');
    assert.deepEqual([...table.entries()].map((e) => e.prefix), ['/dbl'], 'the name the trie matches it by');
  });

  test('longest prefix by whole segment', () => {
    const table = new RouteTable<string>();
    table.set('/', 'root');
    table.set('/user', 'user');
    table.set('/user/ab', 'ab');
    table.set('/user/ab/lab/', 'lab');
    assert.equal(table.match('/user/ab')?.value, 'ab');
    assert.equal(table.match('/user/ab/')?.value, 'ab');
    assert.equal(table.match('/user/ab/tree/x')?.value, 'ab');
    assert.equal(table.match('/user/abc')?.value, 'user');
    assert.equal(table.match('/user/ab/lab')?.value, 'lab');
    assert.equal(table.match('/user/ab/lab')?.prefix, '/user/ab/lab');
    assert.equal(table.match('/other')?.value, 'root');
    assert.equal(table.match('')?.value, 'root');
    assert.equal(table.size, 4);
  });

  test('no match without a root route', () => {
    const table = new RouteTable<string>();
    table.set('/user/ab', 'ab');
    assert.equal(table.match('/user'), undefined);
    assert.equal(table.match('/'), undefined);
    assert.equal(table.match('/user/abc'), undefined);
  });

  test('segments named like Object properties are ordinary keys', () => {
    const table = new RouteTable<string>();
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'prototype', 'valueOf']) {
      assert.equal(table.match(`/${name}/x`), undefined, name);
      table.set(`/${name}`, name);
      assert.equal(table.match(`/${name}/x`)?.value, name);
      assert.equal(table.get(`/${name}/`), name);
    }
    assert.equal(table.match('/__proto__/constructor')?.value, '__proto__');
    assert.equal(table.size, 6);
    assert.equal(table.delete('/__proto__'), true);
    assert.equal(table.match('/__proto__'), undefined);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  test('empty segments from doubled slashes do not crash or mis-match', () => {
    const table = new RouteTable<string>();
    table.set('/a/b', 'ab');
    assert.equal(table.match('/a//b'), undefined);
    assert.equal(table.match('//a/b')?.value, 'ab');
    table.set('/a//b', 'a-empty-b');
    assert.equal(table.match('/a//b/c')?.value, 'a-empty-b');
    assert.equal(table.match('/a/b/c')?.value, 'ab');
  });

  test('replace and delete; deleting prunes but keeps neighbours', () => {
    const table = new RouteTable<string>();
    table.set('/a', 'a');
    table.set('/a/b/c', 'abc');
    table.set('/a/b/c', 'abc2');
    assert.equal(table.size, 2);
    assert.equal(table.match('/a/b/c/d')?.value, 'abc2');
    assert.equal(table.delete('/a/b/c/'), true);
    assert.equal(table.delete('/a/b/c'), false);
    assert.equal(table.match('/a/b/c/d')?.value, 'a');
    assert.equal(table.delete('/a'), true);
    assert.equal(table.match('/a'), undefined);
    assert.equal(table.size, 0);
    table.set('/', 'root');
    assert.equal(table.delete('/'), true);
    assert.equal(table.match('/x'), undefined);
  });

  test('100,000 routes: all found, none confused', () => {
    const table = new RouteTable<number>();
    const n = 100_000;
    for (let i = 0; i < n; i++) table.set(`/user/u${i}`, i);
    assert.equal(table.size, n);
    for (let i = 0; i < n; i += 997) {
      assert.equal(table.match(`/user/u${i}/api/kernels`)?.value, i);
      assert.equal(table.match(`/user/u${i}x`), undefined);
    }
    for (let i = 0; i < n; i += 2) table.delete(`/user/u${i}`);
    assert.equal(table.size, n / 2);
    assert.equal(table.match('/user/u2'), undefined);
    assert.equal(table.match('/user/u3/x')?.value, 3);
    assert.deepEqual([...table.entries()].slice(0, 2).map((e) => e.prefix), ['/user/u1', '/user/u3']);
  });
});
