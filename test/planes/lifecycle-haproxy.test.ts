import { defineLifecycleSuite } from './lifecycle.js';

defineLifecycleSuite('haproxy');
