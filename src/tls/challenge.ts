/** ACME HTTP-01 tokens and key authorizations are base64url (RFC 8555 8.1, 8.3); nothing else reaches a plane. */
const TOKEN = /^[A-Za-z0-9_-]{16,256}$/;
const KEY_AUTHORIZATION = /^[A-Za-z0-9_-]{16,256}\.[A-Za-z0-9_-]{16,256}$/;

export function checkChallenge(token: string, keyAuthorization: string): void {
  if (!TOKEN.test(token)) throw new Error(`ACME token ${JSON.stringify(token.slice(0, 80))} is not base64url`);
  if (!KEY_AUTHORIZATION.test(keyAuthorization)) throw new Error('ACME key authorization is not token.thumbprint in base64url');
}
