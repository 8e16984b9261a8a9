import { defineLifecycleSuite } from './lifecycle.js';

defineLifecycleSuite('builtin');
