import { expect, test } from 'vitest';
import { checkChallenge } from '../../src/tls/challenge.js';

const token = 'evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA';
const thumbprint = 'nP1qzpXGymHBrUEepNY9HCsQk7K8KhOypzEt62jcerQ';

test('an ACME token and key authorization in base64url are accepted', () => {
  expect(() => checkChallenge(token, `${token}.${thumbprint}`)).not.toThrow();
});

test.each([
  ['a token with a newline (a second map line)', `${token}\nevil be_x`, `${token}.${thumbprint}`],
  ['a token with a space', `${token} x`, `${token}.${thumbprint}`],
  ['a short token', 'abc', `abc.${thumbprint}`],
  ['an answer with a newline', token, `${token}.${thumbprint}\nother line`],
  ['an answer without a thumbprint', token, token],
  ['an answer with HAProxy syntax', token, `${token}.%[src]`],
])('%s is refused before it reaches a plane', (_label, badToken, answer) => {
  expect(() => checkChallenge(badToken, answer)).toThrow(/ACME/);
});
