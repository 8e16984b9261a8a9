import { defineHttpPolicySuite } from './policy-suite.js';

defineHttpPolicySuite('builtin');
